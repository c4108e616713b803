//! venv (in progress).
