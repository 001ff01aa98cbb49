"""One exception type for bad input, so the CLI can print a single clear line and exit non-zero."""


class ProvenanceError(Exception):
    """A problem the user can fix: the message names what is wrong, the hint says how to fix it."""

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if fix is None else f"{problem} (fix: {fix})")

    def __reduce__(self):
        """Pickle problem and fix apart, so the error a worker process raises arrives whole."""
        return type(self), (self.problem, self.fix)
