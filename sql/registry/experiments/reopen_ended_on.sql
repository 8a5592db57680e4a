-- Re-deciding day :dt replays it: the experiments it ended run again until it decides anew.
UPDATE experiments SET status = 'running', end_dt = NULL, reason = NULL WHERE end_dt = :dt
