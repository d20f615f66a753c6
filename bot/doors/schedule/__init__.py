"""The one scheduler: which jobs' `schedule` is due (due.py, pure) and starting them through
the engine (runner.py). `agentplane schedule`, the Action and the bot all call runner.py."""
