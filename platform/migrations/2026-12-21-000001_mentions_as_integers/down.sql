UPDATE messages
SET mentions = (
    SELECT json_group_array(CAST(value AS TEXT))
    FROM (SELECT value FROM json_each(messages.mentions) ORDER BY key)
)
WHERE mentions <> '[]';
