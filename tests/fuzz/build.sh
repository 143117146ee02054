#!/bin/sh
# Builds the libFuzzer targets with clang (ASan + UBSan, UB fatal).
# Usage: tests/fuzz/build.sh [OUT_DIR]   (default: build-fuzz)
# Needs clang and libclang-rt-14-dev (libFuzzer), liburing-dev, libfmt-dev.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-$ROOT/build-fuzz}
CXX=${CXX:-clang++}
mkdir -p "$OUT"
FLAGS="-std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
  -Wall -Wextra -Werror -Wconversion -Wsign-conversion -Wshadow -Wcast-qual -Wold-style-cast
  -Wno-gnu-statement-expression -D_GNU_SOURCE -I$ROOT -I$ROOT/include"
VMM="vmm/guest_memory.cpp vmm/log.cpp vmm/interrupt.cpp"
VIRTIO="devices/virtio/queue.cpp devices/virtio/device.cpp devices/virtio/blk_request.cpp devices/virtio/blk.cpp"

cd "$ROOT"
# shellcheck disable=SC2086
$CXX $FLAGS tests/fuzz/queue_blk_fuzz.cpp $VIRTIO $VMM -o "$OUT/queue_blk_fuzz" -luring -lfmt
echo "built $OUT/queue_blk_fuzz"
STORAGE="devices/storage/layer_map.cpp devices/storage/chain_descriptor.cpp devices/storage/crc32.cpp
  devices/storage/file_io.cpp devices/storage/layer_store.cpp"
# shellcheck disable=SC2086
$CXX $FLAGS tests/fuzz/blk_layer_map_fuzz.cpp $STORAGE -o "$OUT/blk_layer_map_fuzz" -lfmt
echo "built $OUT/blk_layer_map_fuzz"
$CXX $FLAGS tests/fuzz/snapshot_format_fuzz.cpp snapshot/format.cpp -o "$OUT/snapshot_format_fuzz" -lfmt
echo "built $OUT/snapshot_format_fuzz"
