"""The chunk plan's parts: a piece of one file (row groups or a byte range), a chunk of
pieces packed up to the block size, and where each row of a chunk comes from."""

from __future__ import annotations

from dataclasses import dataclass

from .storage import LOCAL, Storage

_COUNT_BLOCK = 8 * 2**20


@dataclass(frozen=True)
class Piece:
    """Part of one file: whole Parquet row groups, a CSV byte range cut at line ends, or a
    whole compressed CSV file. ``row_groups`` None: a whole small Parquet file on an object
    store, planned from the listing; its row groups are its footer's, read with the file."""

    path: str
    row_groups: tuple[int, ...] | None = ()
    byte_range: tuple[int, int] | None = None
    rows: int | None = None  # known up front for Parquet
    size: int = 0            # input bytes (Parquet: uncompressed)
    first_row: int = 0       # Parquet: rows of the file's earlier row groups
    compression: str | None = None
    line_end: bytes = b"\n"  # CSV: the byte that ends a line (b"\r" in a CR-only file)
    file_size: int = 0       # Parquet on an object store: the whole file's bytes


@dataclass(frozen=True)
class Chunk:
    """One unit of work: pieces of one or more consecutive files, up to the block size."""

    index: int
    fmt: str
    pieces: tuple[Piece, ...]

    @property
    def path(self) -> str:
        return self.pieces[0].path

    @property
    def source(self) -> str:
        """The input file, or the first of several small ones packed together."""
        n = len({p.path for p in self.pieces})
        return self.path if n == 1 else f"{self.path} (+{n - 1} more files)"

    @property
    def rows(self) -> int | None:
        if any(p.rows is None for p in self.pieces):
            return None
        return sum(p.rows for p in self.pieces)

    @property
    def streamed(self) -> bool:
        """A compressed CSV file: read as a stream of batches, never whole."""
        return self.pieces[0].compression is not None


def pack(pieces: list[Piece], fmt: str, blocksize: int) -> list[Chunk]:
    """Consecutive pieces packed into chunks of at most ``blocksize`` input bytes (a larger
    piece is a chunk of its own): a big file is many chunks, many small files are few. A
    compressed file is always a chunk of its own."""
    chunks: list[Chunk] = []
    cur: list[Piece] = []
    size = 0
    for piece in pieces:
        if cur and (size + piece.size > blocksize or piece.compression
                    or cur[-1].compression):
            chunks.append(Chunk(len(chunks), fmt, tuple(cur)))
            cur, size = [], 0
        last = cur[-1] if cur else None
        if (last is not None and last.path == piece.path and fmt == "parquet"
                and last.row_groups is not None and piece.row_groups is not None):
            cur[-1] = Piece(last.path, last.row_groups + piece.row_groups,
                            rows=(last.rows or 0) + (piece.rows or 0),
                            size=last.size + piece.size, first_row=last.first_row,
                            file_size=last.file_size)
        else:
            cur.append(piece)
        size += piece.size
    if cur:
        chunks.append(Chunk(len(chunks), fmt, tuple(cur)))
    return chunks


@dataclass(frozen=True)
class Span:
    """Consecutive rows of one file within a chunk's table."""

    path: str
    rows: int
    first_row: int | None = None   # the span's first row in its file, when known
    byte_start: int | None = None  # CSV: where the span starts, to count its row on demand
    line_end: bytes = b"\n"


@dataclass(frozen=True)
class RowOrigin:
    """Where each row of a table read from a chunk comes from: file and row in that file.

    Rows are numbered as a user finds them: in a CSV file the data row counted from 1 after
    the header (the line number minus one); in a Parquet file the row index from 0.
    """

    spans: tuple[Span, ...]
    offset: int = 0
    storage: Storage = LOCAL

    def __str__(self) -> str:
        paths = list(dict.fromkeys(s.path for s in self.spans))
        return paths[0] if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} more files)"

    def shifted(self, offset: int) -> RowOrigin:
        """The origin of the rows from ``offset`` on (a slice or batch of the table)."""
        return RowOrigin(self.spans, self.offset + offset, self.storage)

    def locate(self, index: int) -> tuple[str, int | None]:
        i = index + self.offset
        for s in self.spans:
            if i < s.rows:
                first = s.first_row
                if first is None and s.byte_start is not None:
                    first = _rows_before(s.path, s.byte_start, self.storage, s.line_end)
                return s.path, None if first is None else first + i
            i -= s.rows
        return self.spans[-1].path, None


def _rows_before(path: str, offset: int, storage: Storage = LOCAL, line_end: bytes = b"\n"
                 ) -> int:
    """Lines before byte ``offset`` of a CSV file (header included): the data row number, from
    1, of the row that starts there. Streamed in blocks, so memory stays bounded."""
    count = 0
    with storage.open(path, "rb") as fh:
        left = offset
        while left > 0:
            block = fh.read(min(_COUNT_BLOCK, left))
            if not block:
                break
            count += block.count(line_end)
            left -= len(block)
    return count
