"""The ``llm`` built-in handler: an agent whose work is one chat completion.

``handler`` (the handler; imports ``openai``), ``settings`` (the ``model`` block and
the environment's overrides), ``prompt`` (the template and reply parsing), ``call``
(retries and limits around one request), ``store`` (shared state on the server: rate
buckets, reply cache, counters). Import the module you need: this package imports
none of them, so ``meshc status`` never pays for ``openai``.
"""
