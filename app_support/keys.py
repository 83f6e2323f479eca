"""Every st.session_state key that more than one module or page uses, in one place.

Widget keys that belong to a single page stay on that page (prefixed by it: `tr_`, `ev_`, ...).
"""

MODEL = "model_ref"  # the selected ModelRef, shared by every page's sidebar
PENDING_MODEL = "pending_model_ref"  # a ModelRef to select at the next sidebar draw (just saved on Train)
SESSION_MODELS = "session_models"  # run label -> Checkpoint trained in this session and not saved
SESSION_EVALS = "session_evals"  # run label -> EvalResult of a session model
PUBLISHED_RUNS = "published_runs"  # labels of runs already added to SESSION_MODELS
RUN = "train_run"  # this session's fmnist.jobs.Job (its latest run)
OWNER = "job_owner"  # this session's owner token for the job manager
RUN_COUNT = "train_count"  # runs started in this session (names them)
TRAIN_FLASH = "tr_flash"  # a message for the Train page's next draw
MIS_FILTER = "mis_filter"  # the (true, predicted) cell handed from Evaluate or Map to Misclassified
MIS_SELECTED = "mis_selected"  # the test image selected on Misclassified (Map opens it there)
APPLIED_LINK = "applied_link"  # (page, query) of the lesson link last applied, so it applies once
LINKED_MODEL = "linked_model"  # the ?model= value last applied to the picker
SWEEP = "sweep_run"  # this session's app_support.sweeps.SweepRun (its latest sweep)
SWEEP_COUNT = "sweep_count"  # sweeps started in this session (names their studies)
DATASET_DOWNLOADED = "dataset_downloaded"  # where Home's download put the files, said once after its rerun
TEACHER = "teacher_key"  # the teacher's key this session gave (the Class page is open while it is the current one)
NICKNAME = "nickname"  # the student's nickname on the class board (this browser session only)
SHARE = "share_with_class"  # the student's "Share with the class" toggle
RUN_PRESET = "train_run_preset"  # the preset this session's run started from (the board compares settings to it)
KEY_CLIENT = "key_client"  # who tries teacher's keys when the browser's address is unknown: this session
