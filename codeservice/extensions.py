"""The names under which the app keeps its shared objects in ``app.extensions``, in one place.

Each is set once, by the module that owns the object (its ``init_app``, or
on first use), and read through that module or :mod:`codeservice.context`.
No imports: every layer may name them.
"""

from __future__ import annotations

KEYS = "codeservice.keys"
"""The signing keys (:class:`codeservice.keystore.KeyStore`), set by ``keystore.init_app``."""
DATA_KEYS = "codeservice.data_keys"
"""The personal-data keys (:class:`codeservice.pii.DataKeys`), loaded on first use by ``context.data_keys``."""
SCENES = "codeservice.scenes"
"""The installed scenes (:class:`verifiers.SceneRegistry`), set by ``context.init_scenes``."""
DB_SESSIONS = "codeservice.db"
"""The session factory bound to the app's engine, set by ``db.init_app``."""
SQLITE_WRITER = "codeservice.sqlite_writer"
"""The SQLite file's writer, or None on PostgreSQL, set by ``db.init_app``."""
METRICS = "codeservice.metrics"
"""The app's Prometheus metrics, set by ``observability.init_app``."""
VERIFIERS = "codeservice.verifiers"
"""The verify path's key set and each thread's verifiers (:class:`codeservice.scanning.Verifiers`), set by
``scanning.init_app``."""
REVOCATION_LIST = "codeservice.revocation_list"
"""The last signed revocation list and its payload, cached by ``GET /api/v1/revocations``."""
SCAN_DIRECTORY = "codeservice.scan_directory"
"""The process's copy of the scanners and the revocation list (:class:`codeservice.scan_cache.ScanDirectory`),
set by ``scanning.init_app``."""
