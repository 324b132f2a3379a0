//! A [`Serializer`] wrapper that bounds the nesting of what it serializes.
//!
//! Serde serializers, rmp_serde's included, recurse once per level of the value: a value nested
//! 30,000 levels deep overflows the stack and aborts the process before any check on the
//! encoded bytes could run. The wrapper counts levels on the way down and fails with an error
//! once they pass the limit, so encoding returns an error naming the limit instead.
//!
//! It counts levels the way rmp_serde writes them: one per array or map (sequences, tuples,
//! structs, maps), one more for the `{variant: value}` map of a data-carrying enum variant.
//! `Option` and newtype structs write no level but still recurse, so every nested call is also
//! counted against a looser bound.
//!
//! Measured: encoding at both bounds (256 levels of arrays; 1,020 nested `Option`s and newtypes)
//! needs under 256 KiB of stack in a debug build and under 64 KiB in release, far below the
//! 2 MiB of a tokio worker thread.

use std::cell::Cell;
use std::fmt::Display;

use serde::ser::{self, Serialize, Serializer};

/// The nesting budget of one serialization.
pub(crate) struct DepthBudget {
    max_depth: usize,
    max_nesting: usize,
    /// Arrays and maps open now.
    depth: Cell<usize>,
    /// Nested serialize calls open now (levels plus transparent wrappers).
    nesting: Cell<usize>,
    exceeded: Cell<bool>,
    /// The index of the item of the outermost sequence being serialized: where a value nested
    /// too deep sits, for the error message (the argument position, for a call's arguments).
    top_index: Cell<Option<usize>>,
}

impl DepthBudget {
    pub fn new(max_depth: usize) -> DepthBudget {
        DepthBudget {
            max_depth,
            // Each transparent wrapper costs a few stack frames like a level does: allow a
            // few per level, a bound that a real value never reaches and the stack survives.
            max_nesting: max_depth.saturating_mul(4).max(64),
            depth: Cell::new(0),
            nesting: Cell::new(0),
            exceeded: Cell::new(false),
            top_index: Cell::new(None),
        }
    }

    /// Whether the serialization failed because of this budget.
    pub fn exceeded(&self) -> bool {
        self.exceeded.get()
    }

    /// The index of the outermost sequence's item that was being serialized.
    pub fn top_index(&self) -> Option<usize> {
        self.top_index.get()
    }

    pub fn guard<S: Serializer>(&self, inner: S) -> Guard<'_, S> {
        Guard {
            inner,
            budget: self,
        }
    }

    fn enter<E: ser::Error>(&self, levels: usize) -> Result<Level<'_>, E> {
        let depth = self.depth.get() + levels;
        let nesting = self.nesting.get() + 1;
        if depth > self.max_depth || nesting > self.max_nesting {
            self.exceeded.set(true);
            return Err(E::custom(format_args!(
                "nesting exceeds the depth limit of {} levels",
                self.max_depth
            )));
        }
        self.depth.set(depth);
        self.nesting.set(nesting);
        Ok(Level {
            budget: self,
            levels,
        })
    }
}

/// Levels entered; given back when dropped, also when serialization fails half-way.
struct Level<'a> {
    budget: &'a DepthBudget,
    levels: usize,
}

impl Level<'_> {
    fn is_outermost(&self) -> bool {
        self.levels > 0 && self.budget.depth.get() == self.levels
    }
}

impl Drop for Level<'_> {
    fn drop(&mut self) {
        let budget = self.budget;
        budget.depth.set(budget.depth.get() - self.levels);
        budget.nesting.set(budget.nesting.get() - 1);
    }
}

/// A value to serialize under the budget: what the wrapped serializer gets for every nested
/// value, so that the nested calls come back through [`Guard`].
pub(crate) struct Guarded<'a, T: ?Sized> {
    value: &'a T,
    budget: &'a DepthBudget,
}

impl<T: Serialize + ?Sized> Serialize for Guarded<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(self.budget.guard(serializer))
    }
}

/// The serializer wrapper.
pub(crate) struct Guard<'a, S> {
    inner: S,
    budget: &'a DepthBudget,
}

impl<'a, S> Guard<'a, S> {
    fn compound<C>(budget: &'a DepthBudget, inner: C, level: Level<'a>) -> Compound<'a, C> {
        Compound {
            inner,
            budget,
            outermost: level.is_outermost(),
            _level: level,
            next_index: 0,
        }
    }
}

/// A sequence, tuple, map or struct being serialized under the budget.
pub(crate) struct Compound<'a, C> {
    inner: C,
    budget: &'a DepthBudget,
    outermost: bool,
    _level: Level<'a>,
    next_index: usize,
}

impl<'a, C> Compound<'a, C> {
    fn item<'v, T: ?Sized>(&mut self, value: &'v T) -> Guarded<'v, T>
    where
        'a: 'v,
    {
        if self.outermost {
            self.budget.top_index.set(Some(self.next_index));
            self.next_index += 1;
        }
        Guarded {
            value,
            budget: self.budget,
        }
    }
}

macro_rules! forward {
    ($($method:ident($ty:ty);)*) => {
        $(
            fn $method(self, value: $ty) -> Result<S::Ok, S::Error> {
                self.inner.$method(value)
            }
        )*
    };
}

impl<'a, S: Serializer> Serializer for Guard<'a, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Compound<'a, S::SerializeSeq>;
    type SerializeTuple = Compound<'a, S::SerializeTuple>;
    type SerializeTupleStruct = Compound<'a, S::SerializeTupleStruct>;
    type SerializeTupleVariant = Compound<'a, S::SerializeTupleVariant>;
    type SerializeMap = Compound<'a, S::SerializeMap>;
    type SerializeStruct = Compound<'a, S::SerializeStruct>;
    type SerializeStructVariant = Compound<'a, S::SerializeStructVariant>;

    forward! {
        serialize_bool(bool);
        serialize_i8(i8);
        serialize_i16(i16);
        serialize_i32(i32);
        serialize_i64(i64);
        serialize_i128(i128);
        serialize_u8(u8);
        serialize_u16(u16);
        serialize_u32(u32);
        serialize_u64(u64);
        serialize_u128(u128);
        serialize_f32(f32);
        serialize_f64(f64);
        serialize_char(char);
        serialize_str(&str);
        serialize_bytes(&[u8]);
        serialize_unit_struct(&'static str);
    }

    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_none()
    }

    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit_variant(name, index, variant)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        let _level = self.budget.enter(0)?;
        let budget = self.budget;
        self.inner.serialize_some(&Guarded { value, budget })
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let _level = self.budget.enter(0)?;
        let budget = self.budget;
        self.inner
            .serialize_newtype_struct(name, &Guarded { value, budget })
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let _level = self.budget.enter(1)?;
        let budget = self.budget;
        self.inner
            .serialize_newtype_variant(name, index, variant, &Guarded { value, budget })
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        let level = self.budget.enter(1)?;
        let inner = self.inner.serialize_seq(len)?;
        Ok(Self::compound(self.budget, inner, level))
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        let level = self.budget.enter(1)?;
        let inner = self.inner.serialize_tuple(len)?;
        Ok(Self::compound(self.budget, inner, level))
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        let level = self.budget.enter(1)?;
        let inner = self.inner.serialize_tuple_struct(name, len)?;
        Ok(Self::compound(self.budget, inner, level))
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        let level = self.budget.enter(2)?;
        let inner = self
            .inner
            .serialize_tuple_variant(name, index, variant, len)?;
        Ok(Self::compound(self.budget, inner, level))
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        let level = self.budget.enter(1)?;
        let inner = self.inner.serialize_map(len)?;
        Ok(Self::compound(self.budget, inner, level))
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        let level = self.budget.enter(1)?;
        let inner = self.inner.serialize_struct(name, len)?;
        Ok(Self::compound(self.budget, inner, level))
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        let level = self.budget.enter(2)?;
        let inner = self
            .inner
            .serialize_struct_variant(name, index, variant, len)?;
        Ok(Self::compound(self.budget, inner, level))
    }

    fn collect_str<T: Display + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.inner.collect_str(value)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

impl<C: ser::SerializeSeq> ser::SerializeSeq for Compound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let value = self.item(value);
        self.inner.serialize_element(&value)
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeTuple> ser::SerializeTuple for Compound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let value = self.item(value);
        self.inner.serialize_element(&value)
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeTupleStruct> ser::SerializeTupleStruct for Compound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let value = self.item(value);
        self.inner.serialize_field(&value)
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeTupleVariant> ser::SerializeTupleVariant for Compound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let value = self.item(value);
        self.inner.serialize_field(&value)
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeMap> ser::SerializeMap for Compound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), C::Error> {
        let budget = self.budget;
        self.inner.serialize_key(&Guarded { value: key, budget })
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        let budget = self.budget;
        self.inner.serialize_value(&Guarded { value, budget })
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeStruct> ser::SerializeStruct for Compound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), C::Error> {
        let budget = self.budget;
        self.inner.serialize_field(key, &Guarded { value, budget })
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
        self.inner.skip_field(key)
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeStructVariant> ser::SerializeStructVariant for Compound<'_, C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), C::Error> {
        let budget = self.budget;
        self.inner.serialize_field(key, &Guarded { value, budget })
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
        self.inner.skip_field(key)
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}
