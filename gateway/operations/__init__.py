"""Operations: the HTTP endpoint, counters and figures, status, doctor, logs, replay."""
