"""The command line: the parser and the commands, job files, the HTML report and the
activation benchmark. Parses and calls the library (``pipeline.api``); may import every layer.
"""
