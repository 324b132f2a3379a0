//! Async and sync methods, every kind of return, trailing `Option` parameters and structs
//! crossing the wire, seen from both clients.
#![deny(warnings)]

use std::fmt;
use std::time::Duration;

use multifrost::{BlockingHandle, CallOptions, Handle, ParentWorker};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

#[derive(Debug)]
pub enum MathError {
    Overflow(u32),
}

impl fmt::Display for MathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MathError::Overflow(n) => write!(f, "{n}! overflows u64"),
        }
    }
}

impl std::error::Error for MathError {}

pub struct Math;

#[multifrost::worker]
impl Math {
    /// Adds two integers.
    pub async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    pub fn factorial(&self, n: u32) -> Result<u64, MathError> {
        (1..=u64::from(n))
            .try_fold(1u64, |acc, k| acc.checked_mul(k))
            .ok_or(MathError::Overflow(n))
    }

    pub fn reset(&self) {}

    pub async fn unit(&self) -> () {}

    pub async fn scale(&self, p: Point, factor: Option<f64>, offset: Option<Point>) -> Point {
        let factor = factor.unwrap_or(1.0);
        let offset = offset.unwrap_or(Point { x: 0.0, y: 0.0 });
        Point {
            x: p.x * factor + offset.x,
            y: p.y * factor + offset.y,
        }
    }

    pub fn first(&self, items: Option<Vec<i64>>, fallback: i64) -> i64 {
        items
            .and_then(|items| items.first().copied())
            .unwrap_or(fallback)
    }

    pub fn fallible(&self) -> multifrost::Result<String> {
        Ok("fine".into())
    }

    pub fn clone_of(&self, other: Self) -> Self {
        other
    }

    /// More arguments than serde has tuple impls for.
    #[allow(clippy::too_many_arguments)]
    pub fn many(
        &self,
        a: i64,
        b: i64,
        c: i64,
        d: i64,
        e: i64,
        f: i64,
        g: i64,
        h: i64,
        i: i64,
        j: i64,
        k: i64,
        l: i64,
        m: i64,
        n: i64,
        o: i64,
        p: i64,
        q: i64,
        r: u8,
    ) -> i64 {
        [
            a,
            b,
            c,
            d,
            e,
            f,
            g,
            h,
            i,
            j,
            k,
            l,
            m,
            n,
            o,
            p,
            q,
            i64::from(r),
        ]
        .iter()
        .sum()
    }
}

impl Serialize for Math {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_unit()
    }
}

impl<'de> Deserialize<'de> for Math {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <()>::deserialize(deserializer).map(|()| Math)
    }
}

async fn call_async(handle: Handle<Math>) -> multifrost::Result<()> {
    let sum: i64 = handle.call().add(1, 2).await?;
    let factorial: u64 = handle.call().factorial(5).await?;
    let (): () = handle.call().reset().await?;
    let (): () = handle.call().unit().await?;
    let point: Point = handle
        .call()
        .scale(Point { x: 1.0, y: 2.0 }, Some(2.0), None)
        .await?;
    let first: i64 = handle.call().first(None, 7).await?;
    let text: String = handle.call().fallible().await?;
    let math: Math = handle.call().clone_of(Math).await?;
    let total: i64 = handle
        .call()
        .many(
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
        )
        .await?;
    let options = CallOptions::new()
        .timeout(Duration::from_secs(1))
        .namespace("default");
    let quick: i64 = handle
        .call()
        .with_options(options.clone())
        .add(sum, 1)
        .await?;
    let again: i64 = handle.call_with(options).add(quick, 1).await?;
    let _ = (factorial, point, first, text, math, total, again);
    Ok(())
}

fn call_blocking(handle: BlockingHandle<Math>) -> multifrost::Result<()> {
    let sum: i64 = handle.call().add(1, 2)?;
    let factorial: u64 = handle.call().factorial(5)?;
    let (): () = handle.call().reset()?;
    let point: Point = handle.call().scale(Point { x: 1.0, y: 2.0 }, None, None)?;
    let options = CallOptions::new().timeout(Duration::from_secs(1));
    let quick: i64 = handle.call().with_options(options).add(sum, 1)?;
    let _ = (factorial, point, quick);
    Ok(())
}

fn main() {
    let worker = ParentWorker::spawn("math_worker");
    let _async = call_async(worker.handle_for::<Math>());
    let _blocking = || call_blocking(worker.handle_blocking_for::<Math>());
    drop(multifrost::run(Math));
}
