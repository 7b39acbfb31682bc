"""``python -m engine`` runs the command line."""

from engine.cli import main

if __name__ == "__main__":  # not when a spawned reader process re-imports it
    main()
