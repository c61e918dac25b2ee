"""Chunked bodies refused at their first bad edge, not after the read deadline.

gunicorn's `ChunkedReader` looks for each chunk-size line's CRLF and then
reads the chunk it announces. Two edges of that wait instead of answering:

- a chunk-size line ended by a bare LF (`5\\nhello\\n0\\n\\n`): the CRLF it
  looks for never comes, so it reads on until the request's 5 s deadline
  (408). RFC 9112 section 7.1 frames chunks with CRLF only: a bare LF is a
  malformed body, a 400 as soon as it is seen;
- a chunk announced bigger than any body bankapp takes (`200000\\r\\n`, 2 MiB):
  it waits for 2 MiB that would be refused anyway. Its size line is enough
  to answer 413 at once.

`BoundedRequest` is gunicorn's request with this reader for chunked bodies;
`bankapp.server.worker.HardenedWorker` parses with it. The web app's body reader
(`bankapp.web.body`) turns the errors into problems.
"""

from __future__ import annotations

from gunicorn.http import errors
from gunicorn.http.body import Body, ChunkedReader
from gunicorn.http.message import Request

#: The largest body bankapp takes (the web app's `MAX_BODY_BYTES`): a chunk that says more is refused.
MAX_CHUNK_BYTES = 1024 * 1024


class ChunkTooLarge(errors.ParseException):
    """A chunk whose size line announces more than any body may hold: 413."""

    status = 413

    def __init__(self, size: int):
        super().__init__(f"a chunk of {size} bytes was announced, more than the {MAX_CHUNK_BYTES} a body may hold")
        self.size = size

    def __str__(self) -> str:
        return self.args[0]


class BareLineFeed(errors.InvalidChunkSize):
    """A chunk-size line (or the CRLF after a chunk) ended by a bare LF: 400 at once."""

    def __init__(self) -> None:
        super().__init__(b"")

    def __str__(self) -> str:
        return "chunked framing needs CRLF line ends (RFC 9112 section 7.1); a bare LF was sent"


class BoundedChunkedReader(ChunkedReader):
    """gunicorn's reader, refusing a bare LF and an oversized chunk as soon as their bytes arrive."""

    def read_into(self, unreader, buf):
        super().read_into(unreader, buf)
        self._check(buf)

    def parse_chunk_size(self, unreader, data=None):
        if data:
            self._check(data)
        size, rest = super().parse_chunk_size(unreader, data)
        if size > MAX_CHUNK_BYTES:
            raise ChunkTooLarge(size)
        return size, rest

    @staticmethod
    def _check(buf) -> None:
        """A size line being read: a LF not after a CR ends it wrongly (a chunk's data is never scanned here)."""
        at = buf.find(b"\n")
        if at >= 0 and (at == 0 or buf[at - 1] != 0x0D):
            raise BareLineFeed()


class BoundedRequest(Request):
    """gunicorn's request, its chunked bodies read by `BoundedChunkedReader`."""

    body: Body

    def set_body_reader(self):
        super().set_body_reader()
        if isinstance(self.body.reader, ChunkedReader):
            self.body = Body(BoundedChunkedReader(self, self.unreader))
