"""Processes of a running mesh: the entry points of generated packages (``launch``,
``agent``), the supervisor that keeps workers running (``supervisor``), what a worker
process reports and checks at start (``health``, ``preflight``), the retention loop
beside them (``retention_loop``), and the embedded server (``server``,
``server_files``)."""
