// The primitives of the CrabKv wire format (see CrabKvSerializer for the message layouts).
// Internal: only the serializer uses them.
//
//   varint      unsigned LEB128: 7 bits per byte, low group first, high bit = "more follows";
//               at most 10 bytes for 64 bits
//   long, int   zig-zag then varint (small negative numbers stay short: -1 → 1 byte)
//   bool        one byte, 0 or 1 (anything else is malformed)
//   double      8 bytes, IEEE 754, little-endian
//   duration    TimeSpan ticks as a long
//   ttl         one byte 0 (none) or 1 followed by a duration
//   string      varint (UTF-8 byte count + 1), then the bytes; 0 = null, 1 = ""
//   bytes       varint (byte count + 1), then the bytes; 0 = null, 1 = empty
//   count       varint number of items that follow

using System.Buffers.Binary;
using System.Runtime.Serialization;
using System.Text;

namespace CrabKv.Actors.Serialization;

/// <summary>
/// Writes the primitives into a span, or only counts their bytes (<see cref="Measuring"/>),
/// so that a message is sized exactly before its one array is allocated. Internal.
/// </summary>
internal ref struct WireWriter
{
    /// <summary>Strict UTF-8: a lone surrogate fails instead of silently becoming U+FFFD (which would change a key).</summary>
    internal static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly Span<byte> _buffer;
    private readonly bool _measuring;

    private WireWriter(Span<byte> buffer, bool measuring)
    {
        _buffer = buffer;
        _measuring = measuring;
        Position = 0;
    }

    /// <summary>Bytes written (or counted) so far.</summary>
    public int Position { get; private set; }

    /// <summary>A writer that only counts.</summary>
    public static WireWriter Measuring() => new(default, measuring: true);

    /// <summary>A writer into <paramref name="buffer"/>, sized by a measuring pass.</summary>
    public static WireWriter Into(Span<byte> buffer) => new(buffer, measuring: false);

    public void Byte(byte value)
    {
        if (!_measuring)
        {
            _buffer[Position] = value;
        }
        Position++;
    }

    public void Bool(bool value) => Byte(value ? (byte)1 : (byte)0);

    public void VarUInt(ulong value)
    {
        while (value >= 0x80)
        {
            Byte((byte)(value | 0x80));
            value >>= 7;
        }
        Byte((byte)value);
    }

    public void Long(long value) => VarUInt((ulong)((value << 1) ^ (value >> 63)));

    public void Int(int value) => Long(value);

    public void Double(double value)
    {
        if (!_measuring)
        {
            BinaryPrimitives.WriteDoubleLittleEndian(_buffer[Position..], value);
        }
        Position += sizeof(double);
    }

    public void Duration(TimeSpan value) => Long(value.Ticks);

    public void Ttl(TimeSpan? value)
    {
        Bool(value.HasValue);
        if (value.HasValue)
        {
            Duration(value.Value);
        }
    }

    public void Count(int count) => VarUInt((uint)count);

    public void String(string? value)
    {
        if (value is null)
        {
            VarUInt(0);
            return;
        }
        var length = Utf8.GetByteCount(value);
        VarUInt((ulong)length + 1);
        if (!_measuring)
        {
            Utf8.GetBytes(value, _buffer.Slice(Position, length));
        }
        Position += length;
    }

    public void Bytes(byte[]? value)
    {
        if (value is null)
        {
            VarUInt(0);
            return;
        }
        VarUInt((ulong)value.Length + 1);
        if (!_measuring)
        {
            value.CopyTo(_buffer[Position..]);
        }
        Position += value.Length;
    }
}

/// <summary>
/// Reads the primitives, checking every length and count against the bytes that remain
/// before allocating anything, so a truncated or hostile payload ends in a
/// <see cref="SerializationException"/> naming the manifest and the offset. Internal.
/// </summary>
internal ref struct WireReader
{
    private readonly ReadOnlySpan<byte> _data;
    private readonly string _manifest;
    private int _position;

    public WireReader(ReadOnlySpan<byte> data, string manifest)
    {
        _data = data;
        _manifest = manifest;
        _position = 0;
    }

    private readonly int Remaining => _data.Length - _position;

    /// <summary>Bytes of the whole payload (for messages).</summary>
    public readonly int Length => _data.Length;

    public byte Byte()
    {
        if (_position >= _data.Length)
        {
            throw Malformed("the payload ends early");
        }
        return _data[_position++];
    }

    public bool Bool() => Byte() switch
    {
        0 => false,
        1 => true,
        var b => throw Malformed($"a boolean byte is {b}, not 0 or 1", _position - 1),
    };

    public ulong VarUInt()
    {
        var start = _position;
        ulong value = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = Byte();
            // The tenth byte holds bit 63 only: anything more (or a continuation) is malformed.
            if (shift == 63 && b > 1)
            {
                throw Malformed("a varint overflows 64 bits", start);
            }
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return value;
            }
        }
    }

    public long Long()
    {
        var v = VarUInt();
        return (long)(v >> 1) ^ -(long)(v & 1);
    }

    public int Int()
    {
        var start = _position;
        var v = Long();
        return v is >= int.MinValue and <= int.MaxValue ? (int)v : throw Malformed($"{v} does not fit a 32-bit field", start);
    }

    public double Double()
    {
        if (Remaining < sizeof(double))
        {
            throw Malformed("the payload ends inside a double");
        }
        var value = BinaryPrimitives.ReadDoubleLittleEndian(_data[_position..]);
        _position += sizeof(double);
        return value;
    }

    public TimeSpan Duration() => TimeSpan.FromTicks(Long());

    public TimeSpan? Ttl() => Bool() ? Duration() : null;

    /// <summary>A count of items that take at least <paramref name="minItemBytes"/> each: more than the remaining bytes can hold is malformed.</summary>
    public int Count(int minItemBytes)
    {
        var start = _position;
        var count = VarUInt();
        if (count > (ulong)(Remaining / minItemBytes))
        {
            throw Malformed($"a count of {count} items cannot fit the {Remaining} bytes left", start);
        }
        return (int)count;
    }

    public string? String()
    {
        var span = Slice(out var isNull);
        if (isNull)
        {
            return null;
        }
        try
        {
            return WireWriter.Utf8.GetString(span);
        }
        catch (DecoderFallbackException e)
        {
            throw new SerializationException($"Cannot deserialize CrabKv message '{_manifest}': a string is not valid UTF-8 (before byte {_position} of {_data.Length}).", e);
        }
    }

    /// <summary>A byte array of its own (the one copy out of the payload).</summary>
    public byte[]? Bytes()
    {
        var span = Slice(out var isNull);
        return isNull ? null : span.ToArray();
    }

    /// <summary>Every byte was read: trailing bytes mean the sender wrote another layout.</summary>
    public readonly void End()
    {
        if (_position != _data.Length)
        {
            throw Malformed($"{Remaining} bytes follow the end of the message");
        }
    }

    private ReadOnlySpan<byte> Slice(out bool isNull)
    {
        var start = _position;
        var prefix = VarUInt();
        if (prefix == 0)
        {
            isNull = true;
            return default;
        }
        var length = prefix - 1;
        if (length > (ulong)Remaining)
        {
            throw Malformed($"a length of {length} bytes runs past the end ({Remaining} bytes left)", start);
        }
        isNull = false;
        var span = _data.Slice(_position, (int)length);
        _position += (int)length;
        return span;
    }

    private readonly SerializationException Malformed(string reason) => Malformed(reason, _position);

    private readonly SerializationException Malformed(string reason, int at) =>
        new($"Cannot deserialize CrabKv message '{_manifest}': {reason} (at byte {at} of {_data.Length}).");
}
