"""Tests against a real Asterisk 22; skipped unless ``CTI_TEST_ASTERISK=PREFIX`` names an install.

Run: ``CTI_TEST_ASTERISK=/srv/asterisk python3 -m pytest -q -p no:cacheprovider tests/real_asterisk``
(about 80 s; as root, Asterisk runs with every runtime directory under a temporary one).

* ``CTI_TEST_ASTERISK``: the install made by ``asterisk-lab/build.sh`` (``PREFIX/sbin/asterisk``).
* ``CTI_TEST_ASTERISK_LAB``: the directory of ``asterisk-lab/configure.sh`` (default: the project's
  ``../shared/tools/asterisk-lab``), which writes the configuration from our ``asterisk/`` files.
* ``CTI_TEST_ASTERISK_KEEP``: a directory to keep each run in (Asterisk's and cti serve's logs, the
  SQLite call log) instead of removing it.

The terminal summary prints the start-up times, each row's time deltas against Asterisk's events,
and the CPU of the backend and of Asterisk per call (``/proc/PID/stat``).  The same scenarios run
on the built-in simulator in ``tests/test_callog_scenarios_sim.py``.
"""
