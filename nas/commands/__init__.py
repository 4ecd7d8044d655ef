"""Sub-commands of the ``tocsr-nas`` CLI, one module each (see ``tocsr_nas.cli``)."""
