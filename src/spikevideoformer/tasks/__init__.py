"""Tasks: classification/, pose/, segmentation/ (each: data, spec, runner, demo), the task table
(:mod:`.registry`), the dataset table (:mod:`.datasets`), the shared training path
(:mod:`.fit`) and the ablation study."""
