"""Entry points: the `iot` command-line tool and the local-stack launcher behind `make up`."""
