"""`vlp`: the root only wires command groups; each lives in its own module and imports heavy libraries lazily."""

from __future__ import annotations

import typer

from vlp.cli import (
    bench_commands,
    compile_command,
    data_commands,
    eval_command,
    export_command,
    models_commands,
    profiles_commands,
    run_command,
    runs_commands,
    submit_command,
    teams_commands,
    ui_command,
)
from vlp.cli.boundary import run_app

app = typer.Typer(
    name="vlp",
    help="Experiment platform for vision-language research: one experiment file, on a laptop or on Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from vlp.cli.version import describe_version

        typer.echo(describe_version())
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print vlp's version (and git commit when run from a checkout) and exit.",
                                 callback=_print_version, is_eager=True),
) -> None:
    """Experiment platform for vision-language research: one experiment file, on a laptop or on Kubernetes."""
app.command("run")(run_command.run)
app.command("submit")(submit_command.submit)
app.command("compile")(compile_command.compile_pipeline)
app.command("eval")(eval_command.evaluate)
app.command("export")(export_command.export)
app.command("promote")(models_commands.promote)
app.command("ui")(ui_command.ui)
app.add_typer(data_commands.app, name="data")
app.add_typer(runs_commands.app, name="runs")
app.add_typer(models_commands.app, name="models")
app.add_typer(profiles_commands.app, name="profiles")
app.add_typer(bench_commands.app, name="bench")
app.add_typer(teams_commands.app, name="teams")


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
