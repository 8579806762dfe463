"""Close two gaps pysyncobj 0.3.17 leaves open (see shared/notes/pysyncobj.md).

1. Durability. Its FileJournal writes entries into an mmap and never msyncs them; followers
   acknowledge right after the write, so "committed" only meant "in the page cache of a
   majority". DurableJournal msyncs after every append (the leader before it counts itself,
   a follower before it acknowledges, since both add and acknowledge in the same tick), and
   fsyncs the term/vote record (written by pysyncobj, then renamed into place) before any
   vote is sent. Our Replica coalesces many commands
   into one log entry, so the cost is one msync per entry, not per command.

2. Unbounded buffering. A peer that has not authenticated can announce a frame of any length
   and pysyncobj buffers it. cap_frame_size() makes a connection drop a frame whose declared
   length is negative or above MAX_FRAME before buffering it further.
"""
import os
import struct

from pysyncobj import journal as _journal
from pysyncobj import syncobj as _syncobj
from pysyncobj import tcp_connection as _tcp

MAX_FRAME = 16 * 1024 * 1024


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DurableJournal(_journal.FileJournal):
    def __init__(self, journal_file):
        super().__init__(journal_file)
        self._meta_path = journal_file + ".meta"
        self._bulk = False

    def setCurrentTerm(self, term, votedForNodeId):
        # term and vote must be on disk before a vote is sent; the commit index, which
        # pysyncobj saves once a second in the same file, need not be (it is re-learned)
        super().setCurrentTerm(term, votedForNodeId)
        fd = os.open(self._meta_path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(os.path.dirname(self._meta_path) or ".")

    def add(self, command, idx, term):
        super().add(command, idx, term)
        if not self._bulk:
            self.flush()

    def deleteEntriesFrom(self, entryFrom):
        super().deleteEntriesFrom(entryFrom)
        self.flush()

    def deleteEntriesTo(self, entryTo):
        # compaction rewrites the whole journal: one msync at the end, not one per entry
        self._bulk = True
        try:
            super().deleteEntriesTo(entryTo)
        finally:
            self._bulk = False
        self.flush()


def _create_journal(journal_file=None):
    if journal_file is None:
        return _journal.MemoryJournal()
    return DurableJournal(journal_file)


def _guarded_parse(original):
    def parse(self):
        buf = self._TcpConnection__readBuffer
        if len(buf) >= 4:
            (length,) = struct.unpack("i", buf[:4])
            if length < 0 or length > MAX_FRAME:
                self.disconnect()
                return None
        return original(self)
    return parse


_installed = False


def install():
    """Patch pysyncobj once per process; idempotent."""
    global _installed
    if _installed:
        return
    _syncobj.createJournal = _create_journal
    cls = _tcp.TcpConnection
    cls._TcpConnection__processParseMessage = _guarded_parse(cls._TcpConnection__processParseMessage)
    _installed = True
