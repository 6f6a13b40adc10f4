using System.Text;

namespace CrabKv.Storage;

/// <summary>
/// What a key is (FORMAT.md section 3): 1 to a configured number of bytes of UTF-8, from
/// valid UTF-16 text (a lone surrogate has no UTF-8 form, and two such keys would collide on
/// disk). The one place the rule, its strict encoding and its messages live.
/// </summary>
public static class KeyRules
{
    /// <summary>UTF-8 that refuses invalid text instead of replacing it.</summary>
    public static Encoding Utf8 { get; } = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Message for an empty key.</summary>
    public const string EmptyMessage = "Key is empty; keys must be 1 or more bytes of UTF-8.";

    /// <summary>Message for a key that is not valid text.</summary>
    public const string NotTextMessage = "Key is not valid UTF-16 text (a lone surrogate): it has no UTF-8 form, and two such keys would collide on disk.";

    /// <summary>Message for a key given as bytes that are not UTF-8.</summary>
    public const string NotUtf8Message = "Key is not valid UTF-8: keys are text, and these bytes have no text form.";

    /// <summary>Message for a key over its limit, naming the setting to raise.</summary>
    public static string TooLargeMessage(int bytes, string limitName, int limit) => $"Key is {bytes} bytes of UTF-8; the limit ({limitName}) is {limit}.";

    /// <summary>The key's UTF-8 length, or -1 when it is not valid text.</summary>
    public static int ByteCount(string key)
    {
        try
        {
            return Utf8.GetByteCount(key);
        }
        catch (EncoderFallbackException)
        {
            return -1;
        }
    }
}
