/**
 * transformers' learning-rate schedules (`lr_scheduler_type`): the function that builds each
 * and the keyword arguments it takes from `lr_scheduler_kwargs`. get_scheduler passes the
 * kwargs on (`always`; `v5`: transformers 5, TRL 1.x, only) or drops them (`never`). A key the
 * function does not take fails with its TypeError when the trainer builds the schedule, after
 * the model and data are loaded; the runtime builds it at load instead (conscience.recipe.
 * check_scheduler). extension/test/recipes/schedulers.test.ts checks this table against both
 * Python stacks' transformers. `reduce_lr_on_plateau` (torch's ReduceLROnPlateau) and `greedy`
 * are left to the runtime.
 */
export interface Schedule {
  fn: string;
  takes: readonly string[];
  passes: 'always' | 'never' | 'v5';
  /** keys without a default (the function's required arguments) */
  needs?: readonly string[];
}

/** What get_scheduler passes itself: a kwarg of the same name is given twice. */
export const PASSED_BY_GET_SCHEDULER: readonly string[] = ['optimizer', 'num_warmup_steps', 'num_training_steps'];

export const SCHEDULES: Readonly<Record<string, Schedule>> = {
  linear: { fn: 'get_linear_schedule_with_warmup', takes: ['last_epoch'], passes: 'always' },
  cosine: { fn: 'get_cosine_schedule_with_warmup', takes: ['num_cycles', 'last_epoch'], passes: 'always' },
  cosine_with_restarts: { fn: 'get_cosine_with_hard_restarts_schedule_with_warmup', takes: ['num_cycles', 'last_epoch'], passes: 'always' },
  polynomial: { fn: 'get_polynomial_decay_schedule_with_warmup', takes: ['lr_end', 'power', 'last_epoch'], passes: 'always' },
  constant: { fn: 'get_constant_schedule', takes: ['last_epoch'], passes: 'never' },
  constant_with_warmup: { fn: 'get_constant_schedule_with_warmup', takes: ['last_epoch'], passes: 'never' },
  inverse_sqrt: { fn: 'get_inverse_sqrt_schedule', takes: ['timescale', 'last_epoch'], passes: 'v5' },
  cosine_with_min_lr: { fn: 'get_cosine_with_min_lr_schedule_with_warmup', takes: ['num_cycles', 'last_epoch', 'min_lr', 'min_lr_rate'], passes: 'always' },
  cosine_warmup_with_min_lr: { fn: 'get_cosine_with_min_lr_schedule_with_warmup_lr_rate', takes: ['num_cycles', 'last_epoch', 'min_lr', 'min_lr_rate', 'warmup_lr_rate'], passes: 'always' },
  warmup_stable_decay: { fn: 'get_wsd_schedule', takes: ['num_decay_steps', 'num_stable_steps', 'warmup_type', 'decay_type', 'min_lr_ratio', 'num_cycles', 'last_epoch'], passes: 'always', needs: ['num_decay_steps'] },
};
