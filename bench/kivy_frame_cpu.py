"""CPU per frame of a Kivy window in software rendering, with and without multisampling.

    .venv/bin/python bench/kivy_frame_cpu.py --size 1920x1080

Starts a private Xvfb, then for each setting a window of 24 labelled buttons (like the kiosk's home
screen) that changes three labels and redraws 20 times; prints the process's CPU per frame
(``time.process_time``: all its threads, Mesa's llvmpipe workers included). Why: Kivy asks for 2
samples per pixel and llvmpipe gives 4, which made every frame of the kiosk and the hall display
2.5 times the CPU (docs/performance.md, "Kiosk and hall display: no multisampling").
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

FRAMES = 20


def window(width: int, height: int, samples: str) -> None:
    """In a child process: the window, the frames, one line of output."""
    os.environ["KIVY_NO_ARGS"] = "1"
    os.environ["KIVY_LOG_MODE"] = "PYTHON"
    os.environ["KIVY_HOME"] = tempfile.mkdtemp(prefix="kivy-frame-")
    from kivy.config import Config

    Config.set("graphics", "width", str(width))
    Config.set("graphics", "height", str(height))
    Config.set("graphics", "multisamples", samples)
    from kivy.app import App
    from kivy.clock import Clock
    from kivy.uix.button import Button
    from kivy.uix.gridlayout import GridLayout

    class Frames(App):
        def build(self):
            self.grid = GridLayout(cols=4)
            for i in range(24):
                self.grid.add_widget(Button(text=f"[b]Rejestracja {i}[/b]\nCzeka: {i}", markup=True, font_size=40))
            self.marks: list[float] = []
            Clock.schedule_interval(self.step, 0.2)
            return self.grid

        def step(self, _dt: float) -> None:
            self.marks.append(time.process_time())
            for b in self.grid.children[:3]:
                b.text = f"[b]X {len(self.marks)}[/b]"
            if len(self.marks) > FRAMES + 4:  # the first frames compile shaders: left out
                per = (self.marks[-1] - self.marks[4]) / (len(self.marks) - 5)
                print(f"{width}x{height} multisamples={samples}: {per * 1000:.0f} ms of CPU per frame", flush=True)
                self.stop()

    Frames().run()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="1920x1080")
    p.add_argument("--window", nargs=2, help=argparse.SUPPRESS)  # the child's part
    args = p.parse_args()
    if args.window:
        width, height = (int(v) for v in args.size.split("x"))
        window(width, height, args.window[1])
        return 0
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{args.size}x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        env = {**os.environ, "DISPLAY": f":{f.readline().strip()}"}
    try:
        for samples in ("2", "0"):
            subprocess.run(
                [sys.executable, __file__, "--size", args.size, "--window", "x", samples], env=env, check=True
            )
    finally:
        xvfb.terminate()
        xvfb.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
