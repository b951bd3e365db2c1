DROP TABLE news_state;
