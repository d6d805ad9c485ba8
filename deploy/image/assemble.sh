# Sourced by deploy/image/build-image.sh (and tests/test_image_files.py): an SD-card image from
# two folders, without mounting anything and without a loop device.
#
#   assemble_image ROOT_DIR FIRMWARE_DIR IMAGE FAT_MIB
#
# Partition 1: FAT32 labelled RASPIFIRM (the Pi's boot partition, /boot/firmware), filled by
# mtools. Partition 2: ext4 labelled RASPIROOT, filled by mkfs.ext4 -d (owners, modes, links
# and device nodes as in ROOT_DIR). The labels are what Debian's raspi images use, and what
# the image's fstab and raspi-firmware's cmdline.txt (root=LABEL=RASPIROOT) name.
assemble_image() {
  local root=$1 firmware=$2 img=$3 fw_mib=$4 work root_mib
  # FAT32 needs 65525 clusters: below ~64 MiB mkfs.vfat makes a volume mtools cannot label or fill.
  [ "$fw_mib" -ge 64 ] || { echo "assemble_image: the FAT partition needs at least 64 MiB" >&2; return 1; }
  work=$(mktemp -d "${img}.parts.XXXXXX")
  # The root's size and a third more for the office's data, logs of a persistent journal, updates.
  root_mib=$(( $(du -sm --apparent-size "$root" | cut -f1) * 13 / 10 + 600 ))
  rm -f "$img"
  truncate -s $((4 + fw_mib + root_mib))M "$img"
  sfdisk -q "$img" <<TABLE
label: dos
start=4MiB, size=${fw_mib}MiB, type=c, bootable
start=$((4 + fw_mib))MiB, type=83
TABLE
  mkfs.vfat -F 32 -n RASPIFIRM -C "$work/firmware.img" $((fw_mib * 1024)) >/dev/null
  if [ -n "$(ls -A "$firmware")" ]; then
    MTOOLS_SKIP_CHECK=1 mcopy -s -i "$work/firmware.img" "$firmware"/* ::
  fi
  mkfs.ext4 -q -F -L RASPIROOT -d "$root" "$work/root.img" "${root_mib}M"
  dd if="$work/firmware.img" of="$img" bs=1M seek=4 conv=notrunc,sparse status=none
  dd if="$work/root.img" of="$img" bs=1M seek=$((4 + fw_mib)) conv=notrunc,sparse status=none
  rm -rf "$work"
}
