from tuner.cli.main import run

run()
