from pcc.cli import run

run()
