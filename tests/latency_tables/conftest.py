from ..conftest import RES, tiny_space  # noqa: F401  (shared fixtures live in tests/conftest.py)
