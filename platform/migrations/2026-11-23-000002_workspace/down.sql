DROP TABLE mail_queue; DROP TABLE search_queue; DROP TABLE mention_notices; DROP TABLE reactions;
DROP TABLE messages; DROP TABLE room_members; DROP TABLE rooms; DROP TABLE sessions;
DROP TABLE login_states; DROP TABLE members;
