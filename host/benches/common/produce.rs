//! Producing a bench's input to Kafka as fast as the client takes it.

use std::time::Duration;

use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseProducer, BaseRecord};

/// Sends `record`, serving the producer's delivery reports while its queue is full.
pub fn send_waiting<K, P>(producer: &BaseProducer, mut record: BaseRecord<'_, K, P>)
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((_, back)) => {
                record = back;
                producer.poll(Duration::from_millis(5));
            }
        }
    }
}
