"""Close gaps pysyncobj 0.3.17 leaves open (see shared/notes/pysyncobj.md and issue 12).

1. Durability. Its FileJournal never syncs, and it compacts by clearing the journal and adding
   the kept entries back one by one. journal.DurableJournal syncs every change before
   pysyncobj acts on it and compacts by writing a new file aside (see raft/journal.py).
   Its dump (raft.dump, written before compaction drops entries) is renamed into place without
   an fsync; install() makes that rename durable (fsync the file, rename, fsync the directory),
   for a dump taken here and for one received from the leader. Only once it returned does
   pysyncobj count the dump as written and drop the entries it covers. At start, a journal
   that begins before the dump (a crash between the two) is cut at the dump's entries instead
   of being cleared, which lost the entries after them.

2. Unbounded buffering. A peer that has not authenticated can announce a frame of any length
   and pysyncobj buffers it. cap_frame_size() makes a connection drop a frame whose declared
   length is negative or above MAX_FRAME before buffering it further.
"""
import struct

from pysyncobj import serializer as _serializer
from pysyncobj import syncobj as _syncobj
from pysyncobj import journal as _pjournal
from pysyncobj import tcp_connection as _tcp

from . import journal as _journal
from .journal import DurableJournal

MAX_FRAME = 16 * 1024 * 1024

__all__ = ["DurableJournal", "install"]


def _create_journal(journal_file=None):
    if journal_file is None:
        return _pjournal.MemoryJournal()
    return DurableJournal(journal_file)


def _durable_dump_replace(tmp, path):
    _journal.replace_durably(tmp, path, "dump")


def _journal_from_dump(original):
    def load(self, clearJournal):
        if not clearJournal:  # at start: the dump may be newer than the journal's head
            try:
                data = self._SyncObj__serializer.deserialize()
                self._SyncObj__raftLog.start_at(data[2], data[1])
            except Exception:  # noqa: BLE001 - the original reports a dump that fails to load
                pass
        return original(self, clearJournal)
    return load


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
    _serializer.atomicReplace = _durable_dump_replace
    _syncobj.SyncObj._SyncObj__loadDumpFile = _journal_from_dump(_syncobj.SyncObj._SyncObj__loadDumpFile)
    cls = _tcp.TcpConnection
    cls._TcpConnection__processParseMessage = _guarded_parse(cls._TcpConnection__processParseMessage)
    _installed = True
