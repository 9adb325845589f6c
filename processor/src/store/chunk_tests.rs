//! Unit tests of [`super::chunk_rows`].

use super::*;

fn row(p: &str, bytes: usize, v: u32) -> RowWrite<u32> {
    RowWrite {
        partition: p.into(),
        estimated_bytes: bytes,
        values: v,
    }
}

#[test]
fn rows_of_one_partition_share_a_batch() {
    let batches = chunk_rows(
        vec![row("a", 10, 1), row("b", 10, 2), row("a", 10, 3)],
        1000,
        100,
    );
    assert_eq!(batches, vec![vec![1, 3, 2]]);
}

#[test]
fn batches_respect_the_byte_and_statement_limits() {
    let rows: Vec<_> = (0..10).map(|i| row("p", 100, i)).collect();
    let batches = chunk_rows(rows, 250, 100);
    assert_eq!(batches.len(), 5);
    assert!(batches.iter().all(|b| b.len() == 2));
    let rows: Vec<_> = (0..10).map(|i| row(&i.to_string(), 1, i)).collect();
    assert_eq!(chunk_rows(rows, 1_000_000, 3).len(), 4);
}

#[test]
fn an_oversized_row_travels_alone() {
    let batches = chunk_rows(
        vec![row("a", 10, 1), row("b", 5000, 2), row("c", 10, 3)],
        100,
        100,
    );
    assert_eq!(batches, vec![vec![1], vec![2], vec![3]]);
}
