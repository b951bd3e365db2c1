-- `messages.mentions` held member ids as JSON strings (`["3","12"]`); from now on it is a
-- JSON list of integers (`[3,12]`), as a member id is everywhere else. Order is kept.
UPDATE messages
SET mentions = (
    SELECT json_group_array(CAST(value AS INTEGER))
    FROM (SELECT value FROM json_each(messages.mentions) ORDER BY key)
)
WHERE mentions <> '[]';
