-- Re-deciding day :dt replays it: the experiments it started are removed first.
DELETE FROM experiments WHERE created_dt = :dt
