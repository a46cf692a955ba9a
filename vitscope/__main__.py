from vitscope.cli import entry

entry()
