"""The upload path: ``loop`` (the uploader, the one awaiting shell), ``journey`` (resolve -> post ->
use as sans-I/O conversations), ``policy`` (what a failure means: the one place)."""
