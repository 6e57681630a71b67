"""Calls sys.exit when imported: the validator must report it, not exit."""

import sys

print("this line must not reach stdout")
sys.exit(3)
