"""Request processors (run in the receiver, before the log): ``filter``, ``attributes``,
``resource`` (and ``redaction``). Each module exposes a factory with the signature described in
``lookout/pipeline/processor.py``; ``lookout/pipeline/factories.py`` maps types to them."""
