<?xml version="1.0" encoding="UTF-8"?>
<!--
  AMF text noun -> unqualified Dublin Core (oai_dc), for Kiel's OAI-PMH
  provider (docs/oai.md). The input is built by kiel/oai/formats.py:

    <k:record xmlns:k="urn:x-kiel:oai">
      <amf xmlns="http://amf.openlib.org"><text id="...">...</text></amf>
    </k:record>

  Only the stored version enters (docs/oai.md, "What the metadata depends
  on"): what was fetched later must not change a record without a new
  datestamp.

  Empty values are dropped; every value is white-space normalized.
-->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:amf="http://amf.openlib.org"
    xmlns:k="urn:x-kiel:oai"
    xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    exclude-result-prefixes="amf k">

  <xsl:output method="xml" encoding="UTF-8" omit-xml-declaration="yes"/>

  <xsl:template match="/">
    <xsl:apply-templates select="k:record/amf:amf/amf:text[1]"/>
  </xsl:template>

  <xsl:template match="amf:text">
    <oai_dc:dc xsi:schemaLocation="http://www.openarchives.org/OAI/2.0/oai_dc/ http://www.openarchives.org/OAI/2.0/oai_dc.xsd">
      <xsl:call-template name="each">
        <xsl:with-param name="name">dc:title</xsl:with-param>
        <xsl:with-param name="nodes" select="amf:title"/>
      </xsl:call-template>
      <xsl:call-template name="each">
        <xsl:with-param name="name">dc:creator</xsl:with-param>
        <xsl:with-param name="nodes" select="amf:hasauthor/*/amf:name"/>
      </xsl:call-template>
      <xsl:call-template name="each">
        <xsl:with-param name="name">dc:contributor</xsl:with-param>
        <xsl:with-param name="nodes" select="amf:haseditor/*/amf:name"/>
      </xsl:call-template>
      <xsl:call-template name="each">
        <xsl:with-param name="name">dc:subject</xsl:with-param>
        <xsl:with-param name="nodes" select="amf:keywords | amf:keyword | amf:classification"/>
      </xsl:call-template>
      <xsl:call-template name="each">
        <xsl:with-param name="name">dc:description</xsl:with-param>
        <xsl:with-param name="nodes" select="amf:abstract"/>
      </xsl:call-template>
      <xsl:call-template name="each">
        <xsl:with-param name="name">dc:publisher</xsl:with-param>
        <xsl:with-param name="nodes" select="amf:haspublisher/*/amf:name"/>
      </xsl:call-template>
      <xsl:call-template name="each">
        <xsl:with-param name="name">dc:date</xsl:with-param>
        <xsl:with-param name="nodes" select="amf:date"/>
      </xsl:call-template>
      <dc:type>Text</dc:type>
      <xsl:call-template name="each">
        <xsl:with-param name="name">dc:type</xsl:with-param>
        <xsl:with-param name="nodes" select="amf:type"/>
      </xsl:call-template>
      <xsl:call-template name="each">
        <xsl:with-param name="name">dc:format</xsl:with-param>
        <xsl:with-param name="nodes" select="amf:file/amf:format"/>
      </xsl:call-template>
      <xsl:call-template name="each">
        <xsl:with-param name="name">dc:identifier</xsl:with-param>
        <xsl:with-param name="nodes" select="@id | amf:displaypage | amf:file/amf:url"/>
      </xsl:call-template>
      <xsl:call-template name="each">
        <xsl:with-param name="name">dc:language</xsl:with-param>
        <xsl:with-param name="nodes" select="amf:language"/>
      </xsl:call-template>
      <!-- The full texts the record links to, as the version states them. -->
      <xsl:call-template name="each">
        <xsl:with-param name="name">dc:relation</xsl:with-param>
        <xsl:with-param name="nodes" select="amf:file/amf:url"/>
      </xsl:call-template>
    </oai_dc:dc>
  </xsl:template>

  <xsl:template name="each">
    <xsl:param name="name"/>
    <xsl:param name="nodes"/>
    <xsl:for-each select="$nodes[normalize-space(.) != '']">
      <xsl:element name="{$name}" namespace="http://purl.org/dc/elements/1.1/">
        <xsl:value-of select="normalize-space(.)"/>
      </xsl:element>
    </xsl:for-each>
  </xsl:template>

</xsl:stylesheet>
