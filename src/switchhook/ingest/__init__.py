"""Event sources: RabbitMQ (mod_amqp) and FreeSWITCH Event Socket consumers feeding the accept path."""
