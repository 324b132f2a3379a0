use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

#[multifrost::client]
pub trait Geometry {
    fn scale(&self, point: Point, factor: f64) -> Point;
}

pub struct Shapes;

#[multifrost::worker(serves = Geometry)]
impl Shapes {
    pub fn scale(&self, factor: f64, point: Point) -> Point {
        Point { x: point.x * factor, y: point.y * factor }
    }
}

fn main() {}
