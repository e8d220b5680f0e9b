"""What both ends of a Python job share: how calls and values are pickled, and the function a
chunk of Executor.map runs in the worker. Kept apart from kiln.tool, which runs as __main__ in
the worker and must not be imported by the package itself."""

import collections
import io
import pickle
import types
import weakref


def dumps(obj):
    """Plain pickle when it can (fast); cloudpickle for what pickle cannot name (lambdas,
    closures, classes defined in __main__)."""
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        import cloudpickle

        return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


# fn -> its cloudpickle bytes, for functions whose bytes cannot go stale (see _cacheable).
_client_cache = weakref.WeakKeyDictionary()
# bytes -> the function loaded from them, in the worker: a few hundred, most recently used.
_worker_cache = collections.OrderedDict()
_WORKER_CACHE_SIZE = 256


def _by_value(fn):
    """Functions pickle cannot name: those of __main__ (the worker's __main__ is another
    program), lambdas, closures and other local functions."""
    return fn.__module__ == "__main__" or "<" in fn.__qualname__ or fn.__module__ is None


def _global_names(code):
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _global_names(const)


def _cacheable(fn):
    """Its pickled bytes stay right for as long as the function lives: no closure cells and no
    global it uses that can be rebound to something cloudpickle would copy (modules, and names
    that are not globals at all, such as attributes, are safe)."""
    if fn.__closure__ or fn.__defaults__ or fn.__kwdefaults__:
        return False
    g = fn.__globals__
    return all(not (name in g and not isinstance(g[name], types.ModuleType))
               for name in _global_names(fn.__code__))


def load_function(data):
    """The worker's end of a function sent by value: loaded once per distinct bytes."""
    fn = _worker_cache.get(data)
    if fn is None:
        fn = pickle.loads(data)
        _worker_cache[data] = fn
        if len(_worker_cache) > _WORKER_CACHE_SIZE:
            _worker_cache.popitem(last=False)
    else:
        _worker_cache.move_to_end(data)
    return fn


class _CallPickler(pickle.Pickler):
    """Plain (C) pickle, with each function that must travel by value as its cloudpickle bytes
    (made once per function where they cannot go stale) behind load_function."""

    def reducer_override(self, obj):
        if type(obj) is not types.FunctionType or not _by_value(obj):
            return NotImplemented
        data = _client_cache.get(obj)
        if data is None:
            data = dumps_by_value(obj)
            if _cacheable(obj):
                _client_cache[obj] = data
        return load_function, (data,)


def dumps_call(fn, args, kwargs):
    """A job's payload: the pickle of (fn, args, kwargs). Cloudpickle's Python-level pickler costs
    about 30 us a call for a small function; this is a few, for a function sent again."""
    buf = io.BytesIO()
    try:
        _CallPickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump((fn, args, kwargs))
        return buf.getvalue()
    except (pickle.PicklingError, TypeError, AttributeError):
        # Something among the arguments needs cloudpickle too (a local class, a lambda in a list).
        return dumps_by_value((fn, args, kwargs))


def dumps_by_value(obj):
    """For what the worker runs (a job's (fn, args, kwargs), an initializer): functions that
    live in __main__ (the worker's __main__ is another program), lambdas and closures by value,
    with cloudpickle."""
    import cloudpickle  # 35 ms to import: only once a job is sent

    return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def summary(exc):
    """`ValueError: bad input`: the last line of the exception's own formatting."""
    import traceback  # 6 ms to import: only once something failed
    return "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]


def process_chunk(fn, chunk):
    """Executor.map's chunks: one job calls fn on each argument tuple of the chunk."""
    return [fn(*args) for args in chunk]
