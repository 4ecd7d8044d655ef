"""The pipeline's stages, each a library function that the CLI and ``tocsr-nas run`` both call.

* :mod:`~tocsr_nas.stages.space`: a teacher's search space (rules -> blocks x candidates);
* :mod:`~tocsr_nas.stages.costs`: the cost table of a space, cached by architecture;
* :mod:`~tocsr_nas.stages.validation`: the fixed validation set the search scores on;
* :mod:`~tocsr_nas.stages.distill`: capture the teacher's features, distil every (block, candidate);
* :mod:`~tocsr_nas.stages.train`: the training stages as folder-to-folder functions (teacher, SR,
  one step) and :func:`~tocsr_nas.stages.train.distill_library`;
* :mod:`~tocsr_nas.stages.export`: a standalone compact UNet from a configuration;
* :mod:`~tocsr_nas.stages.run`: every stage in order, cached and resumable (``tocsr-nas run``);
* :mod:`~tocsr_nas.stages.report`: ``report.md`` from the stages' outputs.
"""
