"""The `vlp` command line: thin Typer commands over vlp.platform and vlp.pipelines."""
