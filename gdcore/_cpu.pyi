# Type stub of a compiled module: its functions are typed loosely.
from typing import Any

def __getattr__(name: str) -> Any: ...
