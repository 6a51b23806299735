#!/usr/bin/env python3
"""Damages a copy of a valid qcow2 image in one named way (QEMU docs/interop/qcow2.txt layout).

Usage: corrupt.py CASE IMAGE   (IMAGE is modified in place)
Prints the guest offset whose first touch hits the damage, for the write attempt.
"""
import struct
import sys

HDR = struct.Struct(">IIQIIQIIQQIIQ")  # magic .. snapshots_offset (72 bytes)
FIELDS = ["magic", "version", "backing_file_offset", "backing_file_size", "cluster_bits",
          "size", "crypt_method", "l1_size", "l1_table_offset", "refcount_table_offset",
          "refcount_table_clusters", "nb_snapshots", "snapshots_offset"]
OFFSET_MASK = 0x00fffffffffffe00
COPIED = 1 << 63
COMPRESSED = 1 << 62
FEATURE_NAMES = 0x6803f857


class Image:
    def __init__(self, path):
        self.path = path
        self.data = bytearray(open(path, "rb").read())
        self.h = dict(zip(FIELDS, HDR.unpack_from(self.data, 0)))
        self.cluster = 1 << self.h["cluster_bits"]

    def save(self):
        open(self.path, "wb").write(self.data)

    def set(self, field, value):
        self.h[field] = value
        HDR.pack_into(self.data, 0, *[self.h[f] for f in FIELDS])

    def u64(self, off):
        return struct.unpack_from(">Q", self.data, off)[0]

    def put64(self, off, value):
        struct.pack_into(">Q", self.data, off, value)

    def eof_aligned(self, extra_clusters=16):
        """A cluster-aligned offset well past the end of the file."""
        end = (len(self.data) + self.cluster - 1) // self.cluster * self.cluster
        return end + extra_clusters * self.cluster

    def l2_offset(self, l1_index=0):
        return self.u64(self.h["l1_table_offset"] + 8 * l1_index) & OFFSET_MASK

    def first_l2_entry(self, want_compressed=False):
        """(file offset of the entry, guest offset) of the first allocated L2 entry."""
        entries = self.cluster // 8
        for i in range(self.h["l1_size"]):
            l2 = self.l2_offset(i)
            if l2 == 0:
                continue
            for j in range(entries):
                e = self.u64(l2 + 8 * j)
                if e == 0 or bool(e & COMPRESSED) != want_compressed:
                    continue
                return l2 + 8 * j, (i * entries + j) * self.cluster
        raise SystemExit("no allocated L2 entry found")

    def extensions(self):
        """[(type, data)] of the header extensions and the offset just past them."""
        off = 72 if self.h["version"] == 2 else struct.unpack_from(">I", self.data, 100)[0]
        exts = []
        while True:
            t, n = struct.unpack_from(">II", self.data, off)
            off += 8
            if t == 0:
                return exts
            exts.append((t, bytes(self.data[off:off + n])))
            off += (n + 7) // 8 * 8

    def write_extensions(self, exts):
        off = 72 if self.h["version"] == 2 else struct.unpack_from(">I", self.data, 100)[0]
        for t, d in exts:
            pad = (len(d) + 7) // 8 * 8
            self.data[off:off + 8 + pad] = struct.pack(">II", t, len(d)) + d + bytes(pad - len(d))
            off += 8 + pad
        self.data[off:off + 8] = bytes(8)
        if self.h["backing_file_offset"] and off + 8 > self.h["backing_file_offset"]:
            raise SystemExit("extensions would run into the backing file name")


def incompat(img, bit, name=None):
    v = struct.unpack_from(">Q", img.data, 72)[0] | (1 << bit)
    struct.pack_into(">Q", img.data, 72, v)
    exts = [e for e in img.extensions()]
    if name is not None:
        entry = struct.pack(">BB46s", 0, bit, name.encode())
        found = False
        for k, (t, d) in enumerate(exts):
            if t == FEATURE_NAMES:
                exts[k] = (t, d + entry)
                found = True
        if not found:
            exts.append((FEATURE_NAMES, entry))
    else:
        # Without a name table entry for the bit: drop any table that could name it.
        exts = [(t, d) for t, d in exts if t != FEATURE_NAMES]
    img.write_extensions(exts)


def main():
    case, path = sys.argv[1], sys.argv[2]
    img = Image(path)
    touch = 0
    if case == "l1_past_eof":
        img.set("l1_table_offset", img.eof_aligned())
    elif case == "l1_unaligned":
        img.set("l1_table_offset", img.h["l1_table_offset"] + 8)
    elif case == "l1_overlaps_header":
        img.set("l1_table_offset", 0)
    elif case == "huge_l1_size":
        img.set("l1_size", 0x7fffffff)
    elif case == "l1_too_small":
        img.set("l1_size", 0)  # Too small for the disk size.
    elif case == "l2_unaligned":
        img.put64(img.h["l1_table_offset"], (img.l2_offset() + 512) | COPIED)
    elif case == "l2_past_eof":
        img.put64(img.h["l1_table_offset"], img.eof_aligned() | COPIED)
    elif case == "l2_overlaps_refcount_table":
        img.put64(img.h["l1_table_offset"], img.h["refcount_table_offset"] | COPIED)
    elif case == "l2_entry_past_eof":
        entry, touch = img.first_l2_entry()
        img.put64(entry, img.eof_aligned() | COPIED)
    elif case == "l2_entry_unaligned":
        entry, touch = img.first_l2_entry()
        img.put64(entry, (img.u64(entry) & OFFSET_MASK) + 512 | COPIED)
    elif case == "l2_entry_in_header":
        entry, touch = img.first_l2_entry()
        img.put64(entry, 0 | COPIED)
    elif case == "compressed_past_eof":
        entry, touch = img.first_l2_entry(want_compressed=True)
        e = img.u64(entry)
        # Keep the sector count bits, move the host offset far past the end of the file.
        x = 62 - (img.h["cluster_bits"] - 8)
        sectors = e & ~((1 << x) - 1) & ~(3 << 62)
        img.put64(entry, COMPRESSED | sectors | img.eof_aligned(1000))
    elif case == "refcount_table_unaligned":
        img.set("refcount_table_offset", img.h["refcount_table_offset"] + 8)
    elif case == "refcount_table_past_eof":
        img.set("refcount_table_offset", img.eof_aligned())
    elif case == "refcount_table_overlaps_l1":
        img.set("refcount_table_offset", img.h["l1_table_offset"])
    elif case == "refcount_block_past_eof":
        img.put64(img.h["refcount_table_offset"], img.eof_aligned())
        touch = 4 << 20  # Unallocated in the base images: a write there must allocate.
    elif case == "refcount_order_7":
        struct.pack_into(">I", img.data, 96, 7)
    elif case == "refcount_overflow":
        # The data cluster behind guest offset 0 gets the largest 16-bit refcount; taking a
        # snapshot would have to increment it past what the field holds.
        entry, touch = img.first_l2_entry()
        host = img.u64(entry) & OFFSET_MASK
        block = img.u64(img.h["refcount_table_offset"]) & OFFSET_MASK
        struct.pack_into(">H", img.data, block + 2 * (host // img.cluster), 0xffff)
        img.put64(entry, img.u64(entry) & ~COPIED)
    elif case == "cluster_bits_8":
        img.set("cluster_bits", 8)
    elif case == "cluster_bits_22":
        img.set("cluster_bits", 22)
    elif case == "unknown_incompat":
        incompat(img, 20)
    elif case == "unknown_incompat_named":
        incompat(img, 21, "frobnicator")
    elif case == "corrupt_bit":
        incompat(img, 1, "corrupt")
    elif case == "encrypted":
        img.set("crypt_method", 1)
    elif case == "external_data":
        incompat(img, 2, "external data file")
    elif case == "backing_name_past_cluster":
        img.set("backing_file_offset", img.cluster - 16)
        img.set("backing_file_size", 200)
    elif case == "backing_name_too_long":
        img.set("backing_file_offset", 4096 - 8)
        img.set("backing_file_size", 0xffffffff)
    elif case == "snapshot_table_past_eof":
        img.set("nb_snapshots", 1)
        img.set("snapshots_offset", img.eof_aligned())
    elif case == "snapshot_table_unaligned":
        img.set("nb_snapshots", 1)
        img.set("snapshots_offset", img.h["l1_table_offset"] + 8)
    elif case == "too_many_snapshots":
        img.set("nb_snapshots", 0x7fffffff)
        img.set("snapshots_offset", img.cluster * 2)
    elif case == "bad_version":
        img.set("version", 4)
    elif case == "truncated":
        del img.data[200:]
    else:
        raise SystemExit(f"unknown case {case}")
    img.save()
    print(touch)


main()
