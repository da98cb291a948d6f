# Assertions for the firmware test scripts, which run unchanged under MicroPython
# (tests/mpy/run.mjs) and CPython (no pytest there): each failure names what it checked.
import os
import sys


def eq(got, want, what):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))


def true(cond, what):
    if not cond:
        raise AssertionError(what)


def fresh_dir(path):
    """An empty directory `path` (removing the files a previous case left in it)."""
    try:
        names = os.listdir(path)
    except OSError:
        os.mkdir(path)
        return path
    for name in names:
        os.remove(path + "/" + name)
    return path


def done(name, count):
    print("PASS %s %d %s" % (name, count, sys.implementation.name))
