"""The Raft journal: pysyncobj 0.3.17's on-disk layout, written so that a crash loses nothing
that was acknowledged.

Layout (pysyncobj's, so that existing data dirs still load): a 40-byte header whose last field
is the end offset of the last record, then records `len | idx term command | len` (len = the
4-byte little-endian length of the middle part). pysyncobj writes them into an mmap and never
syncs; here:

- add(): the record and the new end offset are written with pwrite and fdatasync'ed before add()
  returns, so a follower acknowledges, and a leader counts itself, only entries on disk;
- deleteEntriesFrom() (a follower dropping a conflicting suffix): the end offset moves back and is
  fdatasync'ed;
- deleteEntriesTo() (compaction, after the dump is durable): the kept entries are written to a new
  file that is fsync'ed and renamed over the journal, then the directory is fsync'ed. A crash at
  any point leaves either the whole old journal or the whole new one.
- term and vote (and the commit index, saved lazily) go to `<journal>.meta` by write, fsync,
  rename, directory fsync, before pysyncobj sends anything that reflects them.

A record torn by a power loss during its write (not yet acknowledged) fails the length check on
load and ends the log there.
"""
import os
import struct

from pysyncobj import journal as _pj
from pysyncobj.pickle import dumps, loads, to_bytes

FIRST = _pj.FIRST_RECORD_OFFSET
END_AT = _pj.LAST_RECORD_OFFSET_OFFSET
HEADER = (_pj.APP_NAME.ljust(_pj.NAME_SIZE, b"\0") + _pj.APP_VERSION.ljust(_pj.VERSION_SIZE, b"\0")
          + struct.pack("<I", _pj.JOURNAL_FORMAT_VERSION))

fault_point = None  # tests only: called with a step's name before each step of a rewrite


def step(name):
    if fault_point is not None:
        fault_point(name)


def fsync_path(path, flags=os.O_RDONLY):
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(tmp, path, what):
    """fsync tmp, rename it over path, fsync the directory: after a crash, path is the old file
    or the complete new one."""
    step(what + ".fsync")
    fsync_path(tmp)
    step(what + ".rename")
    os.rename(tmp, path)
    step(what + ".dirsync")
    fsync_path(os.path.dirname(os.path.abspath(path)))


def write_durably(path, data, what):
    tmp = path + ".tmp"
    step(what + ".write")
    with open(tmp, "wb") as f:
        f.write(data)
    replace_durably(tmp, path, what)


def record(command, idx, term):
    body = struct.pack("<QQ", idx, term) + to_bytes(command)
    n = struct.pack("<I", len(body))
    return n + body + n


def image(entries):
    """A whole journal file holding entries."""
    records = b"".join(record(*e) for e in entries)
    return HEADER + struct.pack("<I", FIRST + len(records)) + records


def parse(data):
    """(entries, their offsets, end offset) of a journal file's bytes."""
    entries, offsets = [], []
    if len(data) < FIRST:
        return entries, offsets, FIRST
    (end,) = struct.unpack_from("<I", data, END_AT)
    end = min(end, len(data))
    at = FIRST
    while at + 4 <= end:
        (n,) = struct.unpack_from("<I", data, at)
        if n < 16 or at + 8 + n > end or struct.unpack_from("<I", data, at + 4 + n)[0] != n:
            break  # torn by a crash during its (never acknowledged) write
        idx, term = struct.unpack_from("<QQ", data, at + 4)
        entries.append((data[at + 20:at + 4 + n], idx, term))
        offsets.append(at)
        at += 8 + n
    return entries, offsets, at


class DurableJournal(_pj.Journal):
    def __init__(self, path):
        self._path = path
        self._meta_path = path + ".meta"
        if not os.path.exists(path):
            write_durably(path, image([]), "journal")
        self._open()
        try:
            with open(self._meta_path, "rb") as f:
                self._meta = loads(f.read())
        except (OSError, EOFError, ValueError):
            self._meta = {}
        self._meta_saved = True

    def _open(self):
        self._fd = os.open(self._path, os.O_RDWR)
        with open(self._path, "rb") as f:
            self._entries, self._offsets, self._end = parse(f.read())

    def _set_end(self, end):
        os.pwrite(self._fd, struct.pack("<I", end), END_AT)
        os.fdatasync(self._fd)
        self._end = end

    # -- entries ----------------------------------------------------------------------------
    def add(self, command, idx, term):
        # the entry joins the log only once it is on disk: if a write or the sync fails (the
        # error goes up to pysyncobj's tick), it is not there to be acknowledged later
        rec = record(command, idx, term)
        start = self._end
        os.pwrite(self._fd, rec, start)
        self._set_end(start + len(rec))
        self._offsets.append(start)
        self._entries.append((command, idx, term))

    def clear(self):
        del self._entries[:], self._offsets[:]
        self._set_end(FIRST)

    def deleteEntriesFrom(self, entryFrom):
        if entryFrom >= len(self._entries):
            return
        end = self._offsets[entryFrom]
        del self._entries[entryFrom:], self._offsets[entryFrom:]
        self._set_end(end)

    def deleteEntriesTo(self, entryTo):
        write_durably(self._path, image(self._entries[entryTo:]), "journal")
        os.close(self._fd)
        self._open()

    def start_at(self, first, second):
        """Drop the entries before the consecutive pair (first, second) if the journal holds it:
        the dump ends with that pair, and a crash after the dump but before compaction leaves
        a journal that starts earlier (pysyncobj would clear it, and lose what follows)."""
        for i in range(len(self._entries) - 1):
            if i and self._entries[i] == first and self._entries[i + 1] == second:
                self.deleteEntriesTo(i)
                return

    def __getitem__(self, item):
        return self._entries[item]

    def __len__(self):
        return len(self._entries)

    def _destroy(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- term, vote, commit index -----------------------------------------------------------
    def _store_meta(self):
        write_durably(self._meta_path, dumps(self._meta), "meta")
        self._meta_saved = True

    def setRaftCommitIndex(self, raftCommitIndex):
        self._meta["raftCommitIndex"] = raftCommitIndex
        self._meta_saved = False

    def getRaftCommitIndex(self):
        return self._meta.get("raftCommitIndex", 1)

    def setCurrentTerm(self, term, votedForNodeId):
        # Raft: term and vote are on disk before any message reflecting them is sent
        self._meta["currentTerm"] = term
        self._meta["votedForNodeId"] = votedForNodeId
        self._store_meta()

    def getCurrentTerm(self):
        return self._meta.get("currentTerm", 0)

    def getVotedForNodeId(self):
        return self._meta.get("votedForNodeId")

    def onOneSecondTimer(self):
        if not self._meta_saved:
            self._store_meta()
