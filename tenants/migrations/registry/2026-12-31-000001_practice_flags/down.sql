DROP TABLE practice_flags;
