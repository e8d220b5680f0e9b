"""What both ends of a Python job share: how calls and values are pickled, and the function a
chunk of Executor.map runs in the worker. Kept apart from kiln.tool, which runs as __main__ in
the worker and must not be imported by the package itself."""

import pickle
import traceback


def dumps(obj):
    """Plain pickle when it can (fast); cloudpickle for what pickle cannot name (lambdas,
    closures, classes defined in __main__)."""
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        import cloudpickle

        return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def dumps_by_value(obj):
    """For what the worker runs (a job's (fn, args, kwargs), an initializer): functions that
    live in __main__ (the worker's __main__ is another program), lambdas and closures by value,
    with cloudpickle."""
    import cloudpickle  # 35 ms to import: only once a job is sent

    return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def summary(exc):
    """`ValueError: bad input`: the last line of the exception's own formatting."""
    return "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]


def process_chunk(fn, chunk):
    """Executor.map's chunks: one job calls fn on each argument tuple of the chunk."""
    return [fn(*args) for args in chunk]
