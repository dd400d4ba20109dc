"""csnapshot's comparison benchmarks, one command: `python -m benchmarks --help`.

`__main__` parses the command line, `runner` runs the scenarios
(`scenarios/`, one module each) and `report` writes the report folder.
"""
