"""Numba kernels: pure functions over arrays (no Python objects, validation or I/O).

Each kernel has a plain-Python twin in ``tests/twins.py`` that it must match. The
structures kernels take are defined in :mod:`cbecsim.kernels.state`; the day loop is
:func:`cbecsim.kernels.day.advance`. Submodules are imported where used, so importing
:mod:`cbecsim.kernels.state` (pure Python) does not load numba.
"""
