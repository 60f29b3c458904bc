# Stubs for the native module lakevec._lakevec (kept in step with src/python/).
from typing import Any, Mapping, Sequence

__version__: str
BUILD_PROFILE: str

class Table:
    @staticmethod
    def open(
        uri: str,
        storage_options: Mapping[str, str] | None = None,
        format: str | None = None,
        version: int | None = None,
        timestamp: str | None = None,
    ) -> Table: ...
    @property
    def uri(self) -> str: ...
    @property
    def format(self) -> str: ...
    @property
    def num_rows(self) -> int: ...
    @property
    def version(self) -> int | None: ...
    def history(self) -> Any: ...
    def public_storage_options(self) -> dict[str, str]: ...
    def schema(self) -> Any: ...
    def files(self) -> Any: ...
    def to_arrow(
        self,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
        batch_size: int | None = None,
        num_threads: int | None = None,
        limit: int | None = None,
        with_row_address: bool = False,
    ) -> Any: ...
    def scan(
        self,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
        batch_size: int | None = None,
        num_threads: int | None = None,
        limit: int | None = None,
        with_row_address: bool = False,
    ) -> Any: ...
    def take(
        self,
        files: Sequence[str],
        rows: Sequence[int],
        columns: Sequence[str] | None = None,
        num_threads: int | None = None,
    ) -> Any: ...
    def at_version(self, version: int) -> Table: ...
    def changes_since(self, other: Table) -> Any: ...
    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...

def sql(
    query: str,
    tables: Sequence[tuple[str, Table]],
    arrow_tables: Sequence[tuple[str, Any]],
    num_threads: int | None = None,
) -> Any: ...
def default_num_threads() -> int: ...
