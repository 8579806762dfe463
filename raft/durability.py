"""Close gaps pysyncobj 0.3.17 leaves open.

1. Durability. Its FileJournal never syncs, and it compacts by clearing the journal and adding
   the kept entries back one by one. journal.DurableJournal syncs every change before
   pysyncobj acts on it and compacts by writing a new file aside (see raft/journal.py).
   Its dump (raft.dump, written before compaction drops entries) is renamed into place without
   an fsync; install() makes that rename durable (fsync the file, rename, fsync the directory),
   for a dump taken here and for one received from the leader. Only once it returned does
   pysyncobj count the dump as written and drop the entries it covers. At start, a journal
   that begins before the dump (a crash between the two) is cut at the dump's entries instead
   of being cleared, which lost the entries after them.

2. Hostile peers without the password. pysyncobj buffers whatever a connection sends, in an
   immutable bytes object it extends for every read (quadratic: a 16 MiB frame cost about a
   second of the tick thread), up to any length the frame announces. Here reads go into a
   bytearray; a connection that has not yet sent one frame that decrypted (Fernet's HMAC
   checked) may announce and buffer at most PREAUTH_MAX_FRAME (its first frame is a 32-byte
   key), an authenticated one MAX_FRAME; beyond that it is dropped.

3. Running out of descriptors. On any accept() error but EAGAIN, pysyncobj's listener unbinds
   and never binds again: after one EMFILE the node could only reach peers it dials itself.
   The listening socket keeps one spare descriptor here: on EMFILE (or ENFILE, ENOBUFS,
   ENOMEM) it frees it, accepts and closes the waiting connection, takes the spare back and
   reports EAGAIN, so the listener stays bound and the tick does not spin on the backlog.
"""
import errno
import logging
import os
import socket
import struct
import time

from pysyncobj import serializer as _serializer
from pysyncobj import syncobj as _syncobj
from pysyncobj import journal as _pjournal
from pysyncobj import tcp_connection as _tcp
from pysyncobj import tcp_server as _tcp_server

from . import journal as _journal
from .journal import DurableJournal

MAX_FRAME = 16 * 1024 * 1024  # from a peer that proved it holds the password
PREAUTH_MAX_FRAME = 4096  # before that
_OUT_OF_DESCRIPTORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}

log = logging.getLogger("clusterd.raft")

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


def _authenticated(conn):
    return getattr(conn, "_clusterd_authenticated", None) is conn._TcpConnection__socket


def _buffer(conn):
    buf = conn._TcpConnection__readBuffer
    if not isinstance(buf, bytearray):  # pysyncobj resets it to bytes() on (dis)connect
        buf = conn._TcpConnection__readBuffer = bytearray(buf)
    return buf


def _read(conn):
    """TcpConnection's read step: one recv, appended in place; False when nothing more."""
    sock = conn._TcpConnection__socket
    try:
        incoming = sock.recv(conn._TcpConnection__recvBufferSize)
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
            conn.disconnect()
        return False
    if not incoming or sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
        conn.disconnect()
        return False
    buf = _buffer(conn)
    buf += incoming
    if not _authenticated(conn) and len(buf) > 4 + PREAUTH_MAX_FRAME:
        conn.disconnect()
        return False
    return True


def _parse_frame(original):
    """pysyncobj's parse step, handed exactly one whole frame whose length is within the cap."""
    def parse(conn):
        buf = _buffer(conn)
        if len(buf) < 4:
            return None
        (length,) = struct.unpack_from("i", buf)
        if length < 0 or length > (MAX_FRAME if _authenticated(conn) else PREAUTH_MAX_FRAME):
            conn.disconnect()
            return None
        if len(buf) - 4 < length:
            return None
        conn._TcpConnection__readBuffer = bytes(buf[:4 + length])
        message = original(conn)
        if message is not None:  # decrypted: the peer holds the password
            conn._clusterd_authenticated = conn._TcpConnection__socket
            del buf[:4 + length]
            conn._TcpConnection__readBuffer = buf
        return message
    return parse


class _Listener:
    """The Raft listening socket, with a spare descriptor for the accept that hits EMFILE."""

    def __init__(self, sock):
        self._sock = sock
        self._spare = self._take_spare()
        self.dropped = 0
        self._logged = float("-inf")

    @staticmethod
    def _take_spare():
        try:
            return os.open(os.devnull, os.O_RDONLY)
        except OSError:
            return None

    def accept(self):
        try:
            return self._sock.accept()
        except OSError as e:
            if e.errno not in _OUT_OF_DESCRIPTORS:
                raise
            self.dropped += 1
            if time.monotonic() - self._logged >= 10:  # a flood must not flood the log too
                self._logged = time.monotonic()
                log.warning("Raft listener: %s; %d connections dropped so far", os.strerror(e.errno),
                            self.dropped)
        if self._spare is not None:
            os.close(self._spare)
            try:
                self._sock.accept()[0].close()
            except OSError:
                pass
        self._spare = self._take_spare()
        raise BlockingIOError(errno.EAGAIN, "out of descriptors: a connection was dropped")

    def close(self):
        if self._spare is not None:
            os.close(self._spare)
            self._spare = None
        self._sock.close()

    def __getattr__(self, name):
        return getattr(self._sock, name)


def _bind_listener(original):
    def bind(server):
        original(server)
        server._TcpServer__socket = _Listener(server._TcpServer__socket)
    return bind


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
    cls._TcpConnection__processRead = _read
    cls._TcpConnection__processParseMessage = _parse_frame(cls._TcpConnection__processParseMessage)
    _tcp_server.TcpServer.bind = _bind_listener(_tcp_server.TcpServer.bind)
    _installed = True
