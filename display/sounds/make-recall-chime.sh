#!/bin/sh
# Makes display/sounds/recall.wav, the chime that opens a recall: three rising plucked notes
# (C6 E6 G6), unlike the call's falling two (chime.wav), so a recall is heard as one before a
# word is said. Needs sox (Debian: apt-get install sox). -D (no dither) and sox's fixed random
# seed make the file the same every time: tests/test_audio.py checks the shipped one is this.
#   sh display/sounds/make-recall-chime.sh [OUT.wav]
set -eu
out=${1:-"$(dirname "$0")/recall.wav"}
sox -D -n -r 22050 -c 1 -b 16 "$out" \
    synth 0.18 pluck C6 vol 0.33 : synth 0.18 pluck E6 vol 0.33 : synth 0.9 pluck G6 vol 0.33
